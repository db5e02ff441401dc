--
-- Add field user to order
--
ALTER TABLE `shop_order` ADD COLUMN `user_id` integer NULL;
ALTER TABLE `shop_order` ADD CONSTRAINT `shop_order_user_id_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`);
