#!/usr/bin/env bash
# Print the CPython interpreter `make install` should build .venv with: $PYTHON when given,
# else the newest of python3.13, python3.12, python3.11 found on PATH (or under pyenv).
# tokenforge supports CPython 3.11 to 3.13; anything else is refused with a clear message.
set -euo pipefail

supported="3.13 3.12 3.11"

works() {  # works CMD -> prints its X.Y when it runs and is a supported CPython
  local v
  v=$("$1" -c 'import platform, sys; print("%d.%d" % sys.version_info[:2] if platform.python_implementation() == "CPython" else "")' 2>/dev/null) || return 1
  for s in $supported; do [ "$v" = "$s" ] && { echo "$v"; return 0; }; done
  return 1
}

wanted="$supported"
if [ -n "${PYTHON:-}" ]; then
  if works "$PYTHON" >/dev/null; then command -v "$PYTHON"; exit 0; fi
  case "$PYTHON" in  # PYTHON=3.12 or PYTHON=python3.12: that version, wherever it is
    3.1[123] | python3.1[123]) wanted="${PYTHON#python}" ;;
    *) echo "PYTHON=$PYTHON is not CPython 3.11, 3.12 or 3.13 (or does not run)." >&2; exit 1 ;;
  esac
fi

for v in $wanted; do
  for cand in "python$v" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/"python$v"; do
    if command -v "$cand" >/dev/null 2>&1 && works "$cand" >/dev/null; then
      command -v "$cand"; exit 0
    fi
  done
done
if [ -z "${PYTHON:-}" ] && command -v python3 >/dev/null 2>&1 && works python3 >/dev/null; then
  command -v python3; exit 0
fi
[ -n "${PYTHON:-}" ] && { echo "PYTHON=$PYTHON: no CPython $wanted found on PATH or under pyenv." >&2; exit 1; }

echo "tokenforge needs CPython 3.11, 3.12 or 3.13, and none was found on PATH." >&2
echo "Install one (e.g. apt install python3.11, or pyenv install 3.13) or run: make run PYTHON=/path/to/python3.x" >&2
exit 1
