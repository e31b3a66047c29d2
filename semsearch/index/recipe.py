"""Which FAISS index to build: a recipe (factory string plus search defaults) chosen from the
corpus size, the dimension and a memory budget. Pure apart from validating custom factory strings."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass

from semsearch.errors import ConfigError

NAMED_TYPES = ("flat", "hnsw", "ivf", "ivfpq")
# auto: exact search up to this many vectors (a query scans 50K x 384 floats in a few ms)
FLAT_MAX_VECTORS = 50_000
# HNSW graph degree; 32 is the usual balance of recall, memory (2 x 32 links a vector) and speed
HNSW_M = 32
# HNSW candidate-list sizes; faiss's default efConstruction of 40 gives a weaker graph
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# k-means wants >= 39 training points a centroid; fewer leaves empty or noisy lists
POINTS_PER_CENTROID = 39
# train on up to this many points a centroid: more adds time, not quality
TRAIN_POINTS_PER_CENTROID = 64
# ivfpq re-ranks k x this many PQ candidates with the float32 vectors kept on disk
RERANK_FACTOR = 10
# ... and never fewer than for this k, the depth tuning measures recall at: with k=2 a 2-bit PQ
# index of the 304 demo documents re-ranked 20 candidates and lost the top hit k=5 found
RERANK_MIN_K = 10
# 4-bit fast-scan codes are coarser: on 704K Wikipedia vectors (IVF4096,PQ128x4fs, nprobe 512)
# recall@10 was 0.945 re-ranking 10k candidates and 0.966 re-ranking 20k, for 10% more time
FAST_SCAN_RERANK_FACTOR = 20


# the kind of an index built without vectors (`semsearch index --lexical-only`): no model, no
# FAISS index, no vector file; the store and BM25 alone
LEXICAL_ONLY = "lexical"


@dataclass(frozen=True)
class IndexRecipe:
    """A FAISS factory string plus the search-time defaults that go with it."""

    factory: str  # e.g. "IVF1024,Flat"; saved in the manifest and logged
    kind: str  # what was asked for: flat, hnsw, ivf, ivfpq, auto or "factory"
    nprobe: int | None = None  # IVF lists visited a query (None: not IVF)
    ef_search: int | None = None  # HNSW candidate list a query (None: not HNSW)
    rerank: int = 0  # re-rank k * rerank candidates exactly against vectors on disk (0: off)
    train_size: int = 0  # vectors sampled to train on (0: nothing to train)
    reason: str = ""  # one line: why this recipe
    # recall@10 measured on a corpus sample when nprobe / efSearch were last tuned, and the
    # target they were tuned to (None: exact, untuned, or built before these were recorded);
    # `semsearch check` compares a fresh measurement with them
    recall: float | None = None
    target_recall: float | None = None

    @property
    def exact(self) -> bool:
        return self.factory == "Flat"

    @property
    def has_vectors(self) -> bool:
        """False for an index built with --lexical-only (BM25 alone, no FAISS index)."""
        return self.kind != LEXICAL_ONLY

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IndexRecipe:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def records_vectors(recipe: dict) -> bool:
    """Whether an index whose recorded recipe (a manifest's, a build report's) is `recipe` holds
    vectors: False for --lexical-only."""
    return recipe.get("kind") != LEXICAL_ONLY


def lexical_only_recipe() -> IndexRecipe:
    """The recipe an index without vectors records."""
    return IndexRecipe("none", LEXICAL_ONLY, reason="BM25 alone (--lexical-only): no model, "
                       "no vectors")


def choose_recipe(kind: str, count: int, dim: int, max_memory: int | None = None) -> IndexRecipe:
    """The recipe for `count` vectors of `dim` floats: `kind` is flat, hnsw, ivf, ivfpq, auto or a
    FAISS factory string. `max_memory` (bytes) bounds what auto and ivfpq keep in RAM.

    >>> choose_recipe("auto", 1000, 384).factory
    'Flat'
    >>> choose_recipe("ivf", 1_000_000, 384).factory
    'IVF4096,Flat'
    """
    if count < 1:
        raise ConfigError("cannot choose an index for 0 vectors; give a corpus with documents")
    name = kind.strip()
    if name.lower() == "auto":
        return _auto(count, dim, max_memory)
    if name.lower() == "flat":
        return IndexRecipe("Flat", "flat", reason="exact search, asked for")
    if name.lower() == "hnsw":
        return IndexRecipe(
            f"HNSW{HNSW_M},Flat", "hnsw", ef_search=HNSW_EF_SEARCH, reason="graph index, asked for"
        )
    if name.lower() == "ivf":
        return _ivf_flat(count, "ivf", "inverted lists, asked for")
    if name.lower() == "ivfpq":
        return _ivf_pq(count, dim, max_memory, "ivfpq", "compressed inverted lists, asked for")
    return _custom(name, count, dim)


def _auto(count: int, dim: int, max_memory: int | None) -> IndexRecipe:
    budget = max_memory if max_memory is not None else default_memory_budget()
    flat_bytes = count * (dim * 4 + 8)
    if count <= FLAT_MAX_VECTORS and (budget is None or flat_bytes <= budget):
        return IndexRecipe(
            "Flat", "auto", reason=f"{count:,} vectors <= {FLAT_MAX_VECTORS:,}: exact search"
        )
    # IVF-PQ, not IVF-Flat, however much RAM there is: on 704K Wikipedia sentence vectors an
    # IVF4096,Flat needed nprobe 512 for recall@10 0.95 and then ran slower than exact search
    # (213 vs 301 queries/s); 4-bit fast-scan codes scan that much several times faster
    pq = _ivf_pq(count, dim, budget, "auto", "")
    return IndexRecipe(
        **{
            **pq.to_dict(),
            "reason": f"{count:,} vectors ({_size(flat_bytes)} of floats): IVF-PQ codes in RAM, "
            "float32 vectors on disk to re-rank",
        }
    )


def ivf_list_count(count: int, per_sqrt: float = 4) -> int:
    """Number of IVF lists: the power of two nearest per_sqrt * sqrt(count), at most count / 39.

    >>> ivf_list_count(1_000_000), ivf_list_count(3000), ivf_list_count(10)
    (4096, 64, 1)
    """
    target = per_sqrt * math.sqrt(count)
    nlist = 2 ** round(math.log2(max(target, 1)))
    while nlist > 1 and nlist * POINTS_PER_CENTROID > count:
        nlist //= 2
    return nlist


def default_nprobe(nlist: int) -> int:
    """Lists a query visits by default: nlist / 8, at least 16 (or all of them when fewer).
    nlist / 16 gave recall@10 of 0.92 on the synthetic benchmark; / 8 reaches 0.95."""
    return min(nlist, max(16, nlist // 8))


def _ivf_flat(count: int, kind: str, reason: str) -> IndexRecipe:
    nlist = ivf_list_count(count)
    return IndexRecipe(
        f"IVF{nlist},Flat",
        kind,
        nprobe=default_nprobe(nlist),
        train_size=min(count, nlist * TRAIN_POINTS_PER_CENTROID),
        reason=reason,
    )


def _ivf_pq(count: int, dim: int, max_memory: int | None, kind: str, reason: str) -> IndexRecipe:
    nlist = ivf_list_count(count)
    # 8-bit codes need 256 centroids a sub-quantiser; shrink for tiny corpora so k-means has
    # >= 39 points a centroid (faiss warns, then fails, below that)
    nbits = max(1, min(8, int(math.log2(max(2, count // POINTS_PER_CENTROID)))))
    divisors = [m for m in range(1, dim + 1) if dim % m == 0 and dim // m >= 2]
    if not divisors:
        raise ConfigError(f"ivfpq needs a dimension of at least 2, not {dim}; use --type flat")
    # default: a quarter of the dimension in code bytes (16x smaller than float32)
    candidates = [m for m in divisors if m <= max(1, dim // 4)] or divisors[:1]
    m = candidates[-1]
    if max_memory is not None:
        fitting = [c for c in divisors if _pq_bytes(count, dim, nlist, c, nbits) <= max_memory]
        if not fitting:
            need = _pq_bytes(count, dim, nlist, divisors[0], nbits)
            raise ConfigError(
                f"--max-memory {_size(max_memory)} is too small for {count:,} vectors "
                f"(the smallest IVF-PQ index needs about {_size(need)}); raise --max-memory"
            )
        m = max(c for c in fitting if c <= m)  # fitting always holds divisors[0] <= m
    suffix = "" if nbits == 8 else f"x{nbits}"
    if nbits == 8 and dim % (2 * m) == 0:
        # the same bytes as 2m sub-quantisers of 4 bits, which faiss scans with SIMD lookups
        # ("fast scan"); as `auto` on 704K real vectors: 8.3-9.1x exact search, recall@10 0.956
        m, suffix = 2 * m, "x4fs"
        # in fewer, longer lists, which fast scan reads in blocks of 32 codes: at recall@10
        # >= 0.95 on those vectors IVF1024 (sqrt(count) lists) ran 7.1-8.9x exact search where
        # IVF4096 ran 6.1-7.5x (bench/probes/index_sweep.py), and its k-means trains 4x faster
        nlist = ivf_list_count(count, per_sqrt=1)
    train = min(count, max(nlist * TRAIN_POINTS_PER_CENTROID, (2**nbits) * POINTS_PER_CENTROID))
    return IndexRecipe(
        f"IVF{nlist},PQ{m}{suffix}",
        kind,
        nprobe=default_nprobe(nlist),
        rerank=FAST_SCAN_RERANK_FACTOR if suffix == "x4fs" else RERANK_FACTOR,
        train_size=train,
        reason=reason,
    )


def _pq_bytes(count: int, dim: int, nlist: int, m: int, nbits: int) -> int:
    codes = count * (math.ceil(m * nbits / 8) + 8)  # codes + int64 ids in the lists
    return codes + nlist * dim * 4 + (2**nbits) * dim * 4


def estimate_memory(recipe: IndexRecipe, count: int, dim: int) -> int:
    """Approximate bytes the index holds in RAM once built (no process overhead)."""
    factory = recipe.factory
    ivf = re.match(r"IVF(\d+),", factory)
    nlist = int(ivf.group(1)) if ivf else 0
    pq = re.search(r"PQ(\d+)(?:x(\d+))?", factory)
    if pq:
        return _pq_bytes(count, dim, nlist, int(pq.group(1)), int(pq.group(2) or 8))
    graph = HNSW_M * 2 * 4 * count if factory.startswith("HNSW") else 0
    return count * (dim * 4 + 8) + nlist * dim * 4 + graph


def default_memory_budget() -> int | None:
    """Half the machine's physical memory, or None where the OS will not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return None


# the FAISS factory components --type accepts, each with its numbers checked before FAISS
# sees them (some bad values abort the process inside FAISS: HNSW0 fails an assertion, NSG
# builds can hang); anything else is refused with the list of families
_COMPONENT = re.compile(
    r"(?P<pca>PCAW?R?)(?P<pca_d>\d+)|(?P<opq>OPQ)(?P<opq_m>\d+)(?:_(?P<opq_d>\d+))?"
    r"|(?P<rr>RR)(?P<rr_d>\d+)|(?P<l2>L2norm)"
    r"|(?P<ivf>IVF)(?P<nlist>\d+)(?:_HNSW(?P<ivf_hnsw>\d+))?"
    r"|(?P<hnsw>HNSW)(?P<hnsw_m>\d+)(?:_(?P<hnsw_code>Flat|SQ8|SQfp16))?"
    r"|(?P<pq>PQ)(?P<pq_m>\d+)(?:x(?P<pq_bits>\d+))?(?P<fs>fs|np)?"
    r"|(?P<sq>SQ(?:4|6|8|fp16|bf16))|(?P<flat>Flat)|(?P<rflat>RFlat)|(?P<idmap>IDMap2?)"
)
FACTORY_FAMILIES = "PCA<d>, OPQ<m>[_<d>], RR<d>, IVF<n>[_HNSW<m>], HNSW<m>, PQ<m>[x<bits>][fs], SQ8, Flat, RFlat"
# the largest IVF list count and HNSW degree taken (FAISS stores them as 32-bit ints; far past
# any useful setting)
MAX_NLIST = 1 << 20
MAX_HNSW_M = 256


def validate_factory(factory: str, count: int, dim: int) -> None:
    """Refuse, as ConfigError saying what to use instead, a factory string FAISS would reject,
    crash on or train badly for `count` vectors of `dim` floats.

    >>> validate_factory("IVF16,PQ8", 10_000, 64)
    >>> validate_factory("IVF0,Flat", 1000, 64)
    Traceback (most recent call last):
    ...
    semsearch.errors.ConfigError: --type 'IVF0,Flat': IVF needs 1 to 1,048,576 lists, not 0; e.g. --type IVF16,Flat
    """
    fix = f"e.g. --type IVF{ivf_list_count(count)},Flat"
    if not factory or len(factory) > 200:
        raise ConfigError(f"--type {factory!r} is not a FAISS factory string; {fix}")
    matches = []
    for part in factory.split(","):  # every component known before any is checked
        match = _COMPONENT.fullmatch(part.strip())
        if match is None:
            raise ConfigError(
                f"--type {factory!r} is not flat, hnsw, ivf, ivfpq, auto, or a FAISS factory "
                f"string semsearch accepts: {part!r} is none of {FACTORY_FAMILIES}; {fix}"
            )
        matches.append(match)
    width = dim
    for match in matches:
        group = match.groupdict()

        def bounded(name: str, value: str, low: int, high: int) -> int:
            number = int(value)
            if not low <= number <= high:
                raise ConfigError(f"--type {factory!r}: {name} {number} is out of bounds "
                                  f"({low} to {high:,}); {fix}")
            return number

        if group["pca"] or group["rr"]:
            width = bounded(f"{group['pca'] or 'RR'} output dimension",
                            group["pca_d"] or group["rr_d"], 1, dim)
        elif group["opq"]:
            out = bounded("OPQ output dimension", group["opq_d"], 1, dim) if group["opq_d"] else width
            m = bounded("OPQ sub-quantisers", group["opq_m"], 1, out)
            if out % m:
                raise ConfigError(f"--type {factory!r}: OPQ{m} needs a dimension divisible by "
                                  f"{m}, not {out}; {fix}")
            width = out
        elif group["ivf"]:
            nlist = int(group["nlist"])
            if not 1 <= nlist <= MAX_NLIST:
                raise ConfigError(f"--type {factory!r}: IVF needs 1 to {MAX_NLIST:,} lists, "
                                  f"not {nlist}; {fix}")
            if nlist > count:
                raise ConfigError(
                    f"--type {factory!r}: IVF{nlist} needs at least {nlist:,} vectors to train "
                    f"its lists, the corpus has {count:,}; use --type auto, or about "
                    f"IVF{ivf_list_count(count)} for this corpus"
                )
            if group["ivf_hnsw"]:
                bounded("HNSW degree", group["ivf_hnsw"], 2, MAX_HNSW_M)
        elif group["hnsw"]:
            bounded("HNSW degree", group["hnsw_m"], 2, MAX_HNSW_M)
        elif group["pq"]:
            m = int(group["pq_m"])
            bits = int(group["pq_bits"] or 8)
            if not 1 <= m <= width or width % m:
                raise ConfigError(f"--type {factory!r}: PQ{m} needs a dimension divisible by "
                                  f"{m}, and the vectors have {width}; {fix}")
            if not 1 <= bits <= 16 or (group["fs"] == "fs" and bits != 4):
                raise ConfigError(f"--type {factory!r}: PQ codes take 1 to 16 bits (4 for "
                                  f"fast scan), not {bits}; {fix}")
            if 2**bits > count:
                raise ConfigError(
                    f"--type {factory!r}: PQ with {bits}-bit codes trains {2**bits:,} centroids "
                    f"and needs at least that many vectors, the corpus has {count:,}; use "
                    f"fewer bits (PQ{m}x{max(1, int(math.log2(max(2, count))))}) or --type auto"
                )


def _custom(factory: str, count: int, dim: int) -> IndexRecipe:
    import faiss

    validate_factory(factory, count, dim)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1][:120]
        raise ConfigError(
            f"--type {factory!r} is not flat, hnsw, ivf, ivfpq, auto, or a FAISS factory string "
            f"faiss accepts ({detail}); e.g. --type 'IVF256,Flat' or --type 'HNSW32,Flat'"
        ) from None
    ivf = faiss.try_extract_index_ivf(index)
    nprobe = default_nprobe(ivf.nlist) if ivf is not None else None
    ef = HNSW_EF_SEARCH if "HNSW" in factory else None
    train = 0
    if not index.is_trained:
        centroids = ivf.nlist if ivf is not None else 256
        train = min(count, max(centroids * TRAIN_POINTS_PER_CENTROID, 256 * POINTS_PER_CENTROID))
    return IndexRecipe(
        factory,
        "factory",
        nprobe=nprobe,
        ef_search=ef,
        train_size=train,
        reason="FAISS factory string, asked for",
    )


def parse_memory(text: str) -> int:
    """Bytes in a size such as 512MB, 2G, 1.5GiB or 1000000.

    >>> parse_memory("2G"), parse_memory("512MB"), parse_memory("1000")
    (2147483648, 536870912, 1000)
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not match:
        raise ConfigError(f"cannot read the size {text!r}; write it like 512MB, 2G or 1.5GiB")
    number, unit = float(match.group(1)), match.group(2)
    return int(number * 1024 ** " kmgt".index(unit or " "))


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
