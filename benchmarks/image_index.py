"""FAISS index choices for the image index: build time, query latency, recall@10 and memory.

    python benchmarks/image_index.py [--sizes 10000,100000] [--kinds flat,ivf,hnsw] [--hnsw-max 20000]
                                     [--data random|lowrank|clustered] [--queries 200] [--threads N]
    python benchmarks/image_index.py --sizes 1000000 --kinds flat,ivf --data lowrank --nlist 1024
    python benchmarks/image_index.py --sizes 1000000 --kinds flat,hnsw --data lowrank --hnsw-max 1000000 \
        --ef-search 128,160,192,256 --keep /tmp/faiss-keep     # a second run reuses the 19-min build

Vectors are L2-normalised 1152-d float32 (MedSigLIP's size). ``random`` draws them uniformly
on the sphere (the issue's workload; the hardest case for any approximate index, since no
point is much nearer than another); ``clustered`` draws them around 1,000 centres (the easy
case: IVF's lists find the clusters); ``lowrank`` maps a 32-d Gaussian latent into 1152-d and
adds noise, closer to real embeddings, which vary continuously along few directions.
Recall@10 is measured against exact (flat) search over the same vectors. Latency is one query
at a time (what a tool call does) on one thread: wall median and p95, and the median CPU time
of the searching thread (what the search costs when the machine is shared); builds use
--threads. Memory is the serialised index size (what it holds in RAM). Writes a Markdown
table and JSON to benchmarks/out/. Prints figures; not a test.
Target (issue 11): recall@10 >= 0.95 at < 5 ms a query for 1M vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from tools.images.vectors import ivf_nlist  # noqa: E402

K = 10
LATENT = 32
CHUNK = 50_000
NPROBES = (1, 4, 8, 16, 32, 64, 128, 256, 512)
EF_SEARCH = (16, 32, 64, 128, 256, 512)


def normalised(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class Data:
    """Deterministic vectors produced chunk by chunk, so 1M x 1152 need not sit in RAM twice."""

    def __init__(self, kind: str, n: int, dim: int, seed: int, spread: float = 1.0):
        self.kind, self.n, self.dim, self.seed, self.spread = kind, n, dim, seed, spread
        rng = np.random.default_rng(seed)
        self.centres = normalised(rng.standard_normal((1000, dim), dtype=np.float32)) if kind == "clustered" else None
        # lowrank: a 32-d latent mapped into 1152-d plus noise, like real embeddings that vary
        # continuously along few directions (no clean clusters for IVF to find)
        self.basis = rng.standard_normal((LATENT, dim), dtype=np.float32) / np.sqrt(LATENT) if kind == "lowrank" else None

    def _draw(self, rng: np.random.Generator, m: int) -> np.ndarray:
        x = rng.standard_normal((m, self.dim), dtype=np.float32)
        if self.basis is not None:
            x = rng.standard_normal((m, LATENT), dtype=np.float32) @ self.basis + self.spread * 0.5 * x / np.sqrt(self.dim)
        elif self.centres is not None:  # noise of norm `spread` around a centre (1.0: cosine ~0.5 within a cluster)
            x = self.centres[rng.integers(0, len(self.centres), m)] + self.spread * x / np.sqrt(self.dim)
        return normalised(x)

    def chunks(self):
        for start in range(0, self.n, CHUNK):
            rng = np.random.default_rng((self.seed, start))
            yield self._draw(rng, min(CHUNK, self.n - start))

    def sample(self, m: int) -> np.ndarray:
        """Training vectors: the first chunks (the data is exchangeable, so this is a fair sample)."""
        parts, got = [], 0
        for chunk in self.chunks():
            parts.append(chunk[: m - got])
            got += len(parts[-1])
            if got >= m:
                break
        return np.concatenate(parts)

    def queries(self, m: int) -> np.ndarray:
        return self._draw(np.random.default_rng((self.seed, 2**31)), m)


def index_bytes(index: faiss.Index) -> int:
    size = [0]

    def count(chunk: bytes) -> int:
        size[0] += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return size[0]


def latencies(index: faiss.Index, queries: np.ndarray, n: int) -> tuple[list[float], np.ndarray, list[float]]:
    """Per-query wall milliseconds (one query a call), the ids found for the first n queries, and
    per-query CPU milliseconds of this thread: on a shared, overloaded machine the wall time
    mostly measures waiting for a core, the CPU time what the search itself costs."""
    times, found, cpu = [], [], []
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query per tool call: OpenMP start-up only adds latency (and noise here)
    for q in queries[:n]:
        t, c = time.perf_counter(), time.thread_time()
        _, ids = index.search(q[None, :], K)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
        found.append(ids[0])
    faiss.omp_set_num_threads(threads)
    return times, np.array(found), cpu


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def build(factory: str, data: Data, train: bool, train_per_list: int = 40) -> tuple[faiss.Index, float]:
    index = faiss.index_factory(data.dim, factory, faiss.METRIC_INNER_PRODUCT)
    t = time.perf_counter()
    if train:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = 10  # k-means converges enough for search in 10 rounds; the default 25 costs 2.5x
        index.train(data.sample(min(data.n, train_per_list * ivf.nlist)))
    if factory.startswith("HNSW"):
        index.hnsw.efConstruction = 40
    for chunk in data.chunks():
        index.add(chunk)
    return index, time.perf_counter() - t


def row(size: int, kind: str, factory: str, param: str, build_s: float, mem: int, timing: tuple,
        rec: float) -> dict:
    times, cpu = sorted(timing[0]), timing[1]
    return {"n": size, "kind": kind, "factory": factory, "param": param, "build_s": round(build_s, 2),
            "memory_mb": round(mem / 2**20, 1), "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3), "cpu_p50_ms": round(statistics.median(cpu), 3),
            f"recall@{K}": round(rec, 3)}


def built(factory: str, data: Data, args: argparse.Namespace, train: bool) -> tuple[faiss.Index, float]:
    """``build``, or the index a run with --keep saved (with the build time it measured then): a
    1M HNSW takes ~19 min to build here, its efSearch sweep seconds."""
    if not args.keep:
        return build(factory, data, train, args.train_per_list)
    stem = f"{data.kind}_{data.n}_{data.dim}_seed{data.seed}_spread{data.spread:g}_{factory.replace(',', '_')}"
    path, meta = args.keep / f"{stem}.faiss", args.keep / f"{stem}.json"
    if path.is_file() and meta.is_file():
        return faiss.read_index(str(path)), json.loads(meta.read_text())["build_s"]
    index, build_s = build(factory, data, train, args.train_per_list)
    args.keep.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))
    meta.write_text(json.dumps({"build_s": build_s}))
    return index, build_s


def bench_size(size: int, args: argparse.Namespace) -> list[dict]:
    data = Data(args.data, size, args.dim, args.seed, args.spread)
    queries = data.queries(args.queries)
    rows = []
    flat, build_s = build("Flat", data, train=False)
    _, truth = flat.search(queries, K)  # batched exact search: the ground truth
    n_lat = args.queries if size <= 100_000 else min(args.queries, 30)  # 1M flat is ~0.1-0.5 s a query
    times, found, cpu = latencies(flat, queries, n_lat)
    rows.append(row(size, "flat", "Flat", "-", build_s, index_bytes(flat), (times, cpu), recall(found, truth[:n_lat])))
    print(rows[-1], flush=True)
    del flat
    if "ivf" in args.kinds:
        nlist = args.nlist or ivf_nlist(size)
        factory = f"IVF{nlist},Flat"
        index, build_s = built(factory, data, args, train=True)
        mem = index_bytes(index)
        for nprobe in [p for p in NPROBES if p <= nlist]:
            index.nprobe = nprobe
            times, found, cpu = latencies(index, queries, args.queries)
            rows.append(row(size, "ivf", factory, f"nprobe={nprobe}", build_s, mem, (times, cpu), recall(found, truth)))
            print(rows[-1], flush=True)
            if rows[-1][f"recall@{K}"] >= 0.99:
                break
        del index
    if "hnsw" in args.kinds and size > args.hnsw_max:
        print(f"HNSW skipped at {size:,}: its build took 17 min for 100k on this shared 2-core machine "
              f"(raise --hnsw-max to run it)", flush=True)
    elif "hnsw" in args.kinds:
        factory = f"HNSW{args.hnsw_m},Flat"
        index, build_s = built(factory, data, args, train=False)
        mem = index_bytes(index)
        for ef in args.ef_search:
            index.hnsw.efSearch = ef
            times, found, cpu = latencies(index, queries, args.queries)
            rows.append(row(size, "hnsw", factory, f"efSearch={ef}", build_s, mem, (times, cpu), recall(found, truth)))
            print(rows[-1], flush=True)
            if rows[-1][f"recall@{K}"] >= 0.99:
                break
        del index
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    cols = list(rows[0])
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    kind = {"clustered": f"clustered (1000 centres, spread {args.spread})",
            "lowrank": f"low-rank ({LATENT}-d latent + noise {0.5 * args.spread})"}.get(args.data, args.data)
    lines = [f"Image index benchmark: {kind} L2-normalised {args.dim}-d vectors, {args.queries} queries, "
             f"k={K}, builds on {faiss.omp_get_max_threads()} threads, queries one at a time on 1 thread, faiss {faiss.__version__}; "
             f"{os.cpu_count()} cores, load average at the end {load} (1/5/15 min).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated collection sizes (1000000 takes ~10 min+)")
    parser.add_argument("--kinds", default="flat,ivf,hnsw", help="flat is always built (it is the ground truth)")
    parser.add_argument("--data", choices=("random", "clustered", "lowrank"), default="random")
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--spread", type=float, default=1.0, help="clustered: noise norm around each centre")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--hnsw-max", type=int, default=20_000, help="largest size to build HNSW for (slow to build)")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default: the index's rule, ~4 sqrt(n))")
    parser.add_argument("--train-per-list", type=int, default=40, help="k-means training vectors per IVF list")
    parser.add_argument("--ef-search", type=lambda v: [int(x) for x in v.split(",")], default=list(EF_SEARCH),
                        help="HNSW efSearch values to sweep (stops at recall 0.99)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="save built IVF/HNSW indexes here and reuse them on the next run (with their build time)")
    parser.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    args.kinds = set(args.kinds.split(","))
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rows: list[dict] = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows += bench_size(size, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"image_index_{args.data}_{args.sizes.replace(',', '_')}_{'_'.join(sorted(args.kinds))}"
    (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows, args)
    (args.out / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
