"""Regenerate the Python contracts from proto/llmproxy/v1/*.proto.

    python scripts/gen_protos.py          # rewrite services/v1/ (the package llmproxy.v1)
    python scripts/gen_protos.py --check  # exit 1 if regenerating would change anything

The generated modules, with their .pyi stubs, are committed; tests/unit/test_contracts.py
runs the check so the committed code never drifts from the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_DIR = PROTO_ROOT / "llmproxy" / "v1"
OUT_DIR = ROOT / "services" / "v1"
PACKAGE_DOC = (
    '"""Generated gRPC contracts (llmproxy.v1). Do not edit: run scripts/gen_protos.py."""\n'
)


def generate(into: Path) -> None:
    """Run protoc for every .proto file, writing llmproxy/v1/*_pb2*.py(i) under ``into``."""
    well_known = str(resources.files("grpc_tools") / "_proto")
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_DIR.glob("*.proto"))
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={into}",
            f"--pyi_out={into}",
            f"--grpc_python_out={into}",
            *protos,
        ]
    )
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    (into / "llmproxy" / "v1" / "__init__.py").write_text(PACKAGE_DOC)


def differences(generated: Path, committed: Path) -> list[str]:
    """Names of files that differ, are missing, or are extra in ``committed``."""
    new = {p.name for p in generated.iterdir() if p.is_file()}
    old = {p.name for p in committed.iterdir() if p.is_file()} if committed.exists() else set()
    changed = sorted(n for n in new & old if not filecmp.cmp(generated / n, committed / n, False))
    return (
        changed
        + sorted(f"missing: {n}" for n in new - old)
        + sorted(f"stale: {n}" for n in old - new)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "llmproxy" / "v1"
        diff = differences(fresh, OUT_DIR)
        if args.check:
            if diff:
                print("generated contracts are out of date:", ", ".join(diff))
                print("run: python scripts/gen_protos.py")
                return 1
            print("generated contracts are up to date")
            return 0
        if OUT_DIR.exists():
            shutil.rmtree(OUT_DIR)
        shutil.copytree(fresh, OUT_DIR)
        print(f"wrote {len(list(OUT_DIR.iterdir()))} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
