"""Compare two golden folders of benchmarks/golden.sh bit for bit, ignoring wall times and absolute paths."""
import json, sys
from pathlib import Path

VOLATILE = {"wall_s", "proxy_s", "genotype_file", "seconds", "elapsed_s"}

def clean(obj, root):
    if isinstance(obj, dict):
        return {k: clean(v, root) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [clean(v, root) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(root), "ROOT")
    return obj

a, b = Path(sys.argv[1]), Path(sys.argv[2])
bad = 0
files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix not in (".png", ".lock") and ".sqlite" not in p.name)
for rel in files:
    pa, pb = a / rel, b / rel
    if not pb.exists():
        print("MISSING", rel); bad += 1; continue
    if rel.suffix == ".json":
        same = clean(json.loads(pa.read_text()), a) == clean(json.loads(pb.read_text()), b)
    elif rel.name == "demo.stdout":
        strip = lambda t, r: [l.replace(str(r), "ROOT").split(" computed now")[0] for l in t.splitlines()]
        same = strip(pa.read_text(), a) == strip(pb.read_text(), b)
    else:
        same = pa.read_bytes().replace(str(a).encode(), b"ROOT") == pb.read_bytes().replace(str(b).encode(), b"ROOT")
    if not same:
        print("DIFFERS", rel); bad += 1
print(f"{len(files)} files compared, {bad} differ")
sys.exit(1 if bad else 0)
