"""Fast word-shingle MinHash, LSH banding and exact Jaccard verification.

The kernels are compiled with numba and run in parallel over documents; they are shared by
the standalone ``dedup`` / ``decontaminate`` commands, the curation dedup block and the
contamination index, so all of them agree on what "near-duplicate" means.
"""
