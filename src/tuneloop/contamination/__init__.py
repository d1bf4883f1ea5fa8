"""The contamination index (one-way hashes of evaluation items) and the checks against it.

Training-side code uses only this package: it never sees evaluation text, only hashes,
MinHash band keys, shingle-hash sets, n-gram hashes, canary hashes and (optionally) embeddings.
"""
