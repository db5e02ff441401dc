BEGIN;
--
-- Alter field amount on invoice
--
ALTER TABLE "billing_invoice" ALTER COLUMN "amount" TYPE numeric(12, 2) USING "amount"::numeric(12, 2);
COMMIT;
