#!/usr/bin/env python3
"""faiss IndexHNSWFlat and hnswlib on the vectors of bench/ann_bench.cpp, for a side-by-side
queries/s at equal recall@10 with our index.

    mkdir -p /tmp/ann && ANN_BENCH_N=200000 ANN_BENCH_DUMP=/tmp/ann \
        build/bench/ann_bench --benchmark_filter='BM_Ann'
    python3 bench/ann_compare.py /tmp/ann

Same vectors (vectors.npy), same queries (queries.npy: row ids, the row itself excluded), same
exact top-10 (truth.npy), same graph parameters as index.* defaults (M=16, ef_construction=100),
one thread, cosine as inner product over L2-normalised vectors. Each library is timed one
query per call (as a similar-users request is served; includes Python's per-call overhead,
~5-20 us) and all queries in one call (batch_qps: no Python overhead, one thread): compare
our qps_1thread against the batch figure, the libraries' best. On a shared machine compare
CPU-time rates: batch_qps_cpu here against items_per_second of BM_AnnQuery (CPU time).
"""
import sys
import time

import numpy as np


def recall_and_qps(search, vectors, queries, truth, k=10):
    lat = []
    hits = 0
    for qi, q in enumerate(queries):
        x = vectors[q:q + 1]
        t0 = time.perf_counter()
        ids = search(x, k + 1)
        lat.append(time.perf_counter() - t0)
        got = [i for i in ids if i != q][:k]
        hits += len(set(got) & set(truth[qi].tolist()))
    lat = np.array(lat)
    return hits / truth.size, len(lat) / lat.sum(), np.percentile(lat, 50) * 1e6, np.percentile(lat, 99) * 1e6


def batch_qps(search, vectors, queries, truth, k=10):
    """All queries in one call (one thread): no per-call Python overhead, the library's best."""
    x = vectors[queries]
    t0, c0 = time.perf_counter(), time.process_time()
    ids = search(x, k + 1)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    hits = 0
    for qi, q in enumerate(queries):
        got = [i for i in ids[qi].tolist() if i != q][:k]
        hits += len(set(got) & set(truth[qi].tolist()))
    return hits / truth.size, len(queries) / dt, len(queries) / dc


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ann"
    vectors = np.load(f"{d}/vectors.npy").astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    queries = np.load(f"{d}/queries.npy").reshape(-1)
    truth = np.load(f"{d}/truth.npy")
    n, dim = vectors.shape
    efs = [16, 32, 64, 128, 256]
    print(f"n={n} d={dim} queries={len(queries)} M=16 ef_construction=100, 1 thread")

    import faiss
    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    t0 = time.perf_counter()
    index.add(vectors)
    print(f"faiss IndexHNSWFlat build {time.perf_counter() - t0:.1f} s")
    for ef in efs:
        index.hnsw.efSearch = ef
        r, qps, p50, p99 = recall_and_qps(lambda x, k: index.search(x, k)[1][0], vectors, queries, truth)
        rb, bqps, cqps = batch_qps(lambda x, k: index.search(x, k)[1], vectors, queries, truth)
        print(f"faiss   ef={ef:4d} recall@10={r:.4f} qps={qps:8.0f} p50={p50:7.1f}us p99={p99:7.1f}us"
              f" batch_qps={bqps:8.0f} batch_qps_cpu={cqps:8.0f} (recall {rb:.4f})")
    del index

    import hnswlib
    h = hnswlib.Index(space="ip", dim=dim)
    h.init_index(max_elements=n, M=16, ef_construction=100, random_seed=100)
    h.set_num_threads(1)
    t0 = time.perf_counter()
    h.add_items(vectors, np.arange(n))
    print(f"hnswlib build {time.perf_counter() - t0:.1f} s")
    for ef in efs:
        h.set_ef(ef)
        r, qps, p50, p99 = recall_and_qps(lambda x, k: h.knn_query(x, k)[0][0], vectors, queries, truth)
        rb, bqps, cqps = batch_qps(lambda x, k: h.knn_query(x, k, num_threads=1)[0], vectors, queries, truth)
        print(f"hnswlib ef={ef:4d} recall@10={r:.4f} qps={qps:8.0f} p50={p50:7.1f}us p99={p99:7.1f}us"
              f" batch_qps={bqps:8.0f} batch_qps_cpu={cqps:8.0f} (recall {rb:.4f})")


if __name__ == "__main__":
    main()
