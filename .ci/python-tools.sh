# Sourced by .ci/run: installs the Python migration runners (Alembic, Django,
# their drivers) at the versions pinned in .ci/python-requirements.txt into
# .ci/tools/venv (gitignored), and exports PHASEGATE_PYTHON, the interpreter
# tests/runner_alembic.rs and tests/runner_django.rs run them with.
# Re-running is fast: pip runs only when the requirements file changed since
# the last successful install.
py_venv=.ci/tools/venv
py_requirements=.ci/python-requirements.txt
if [ ! -x "$py_venv/bin/python" ]; then
    echo "== creating $py_venv"
    "${PHASEGATE_BOOTSTRAP_PYTHON:-python3}" -m venv "$py_venv"
fi
py_want="$(sha256sum "$py_requirements" | cut -d' ' -f1)"
if [ "$(cat "$py_venv/.installed" 2>/dev/null)" != "$py_want" ]; then
    echo "== pip install -r $py_requirements"
    "$py_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_requirements"
    echo "$py_want" > "$py_venv/.installed"
fi
export PHASEGATE_PYTHON="$PWD/$py_venv/bin/python"
