"""Bounds of the numbers a search takes. FAISS reads k, nprobe and efSearch into 32-bit C ints in
places, where a larger value wraps around and returns silently wrong results; these bounds sit
far below that and far above any useful setting. Pure constants: the CLI imports them cheaply."""

# results a query returns (a document's chunks are fetched 4x deeper, re-ranking 20x deeper)
MAX_K = 10_000
# IVF lists a query visits (the largest index recipe has 65,536 lists; more are clamped to nlist)
MAX_NPROBE = 1 << 20
# HNSW candidate list length
MAX_EF_SEARCH = 1 << 16
# a 32-bit FAISS int: every count handed to FAISS must stay below it
INT32_MAX = 2**31 - 1
# first-stage documents a second phase re-scores (each is encoded by the rescoring model)
MAX_RESCORE_DEPTH = 1000
