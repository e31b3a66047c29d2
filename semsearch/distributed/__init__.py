"""Scale-out: index a corpus on a Ray cluster (`semsearch index --engine ray`).

Ray is an optional dependency (`pip install 'semsearch[distributed]'`); importing this package
does not import it, and `--engine ray` without it fails with one line saying what to install.
"""

from semsearch.distributed.ray_index import index_corpus_ray
from semsearch.distributed.session import RayOptions, require_ray

__all__ = ["RayOptions", "index_corpus_ray", "require_ray"]
