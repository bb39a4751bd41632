#!/usr/bin/env bash
# Build the wheel, check it installs only `tunelog/...`, install it into a fresh venv and run
# the daemon from there: --version, start, status, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'TUNELOG_HOME="$work/home" "$work/venv/bin/tunectl" daemon stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

.venv/bin/python -m pip wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/tunelog-*.whl)
.venv/bin/python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
assert tops == {"tunelog"}, f"wheel installs top-level modules besides tunelog: {sorted(tops)}"
for needed in ("tunelog/daemon/main.py", "tunelog/plugins/lora_trainer/manifest.yaml",
               "tunelog/frontends/cli/main.py", "tunelog/events/base.py", "tunelog/frontends/web/pages/run.py",
               "tunelog/frontends/web/editor/component.py", "tunelog/frontends/web/static/bundle/editor.js"):
    assert needed in names, f"{needed} missing from the wheel"
print(f"wheel ok: {len(names)} files, top level {sorted(tops)}")
PY
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"
"$work/venv/bin/tunectl" --version
export TUNELOG_HOME="$work/home"
"$work/venv/bin/tunectl" daemon start
"$work/venv/bin/tunectl" status
"$work/venv/bin/tunectl" status --json | "$work/venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); assert d["head"] >= 1, d; print("status ok, head", d["head"])'
url=$("$work/venv/bin/tunectl" ui --print-url)
code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
[ "$code" = 303 ] || { echo "the web UI did not answer its token URL with a redirect (got $code)"; exit 1; }
echo "web UI ok: $url -> $code"
"$work/venv/bin/tunectl" daemon stop
echo "wheel smoke test passed"
