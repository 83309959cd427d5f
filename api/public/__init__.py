"""The public face of the territory (issue 17): a page and open data without a token.

`mount_public(app, prefix)` adds `/public` (the page), `/public/static/*` (its assets),
`/api/v1/public/summary` and `/api/v1/public/opendata[...]`; `PublicPolicy` is the one
place that decides what may be shown; `PublicCache` makes a crowd cost one computation
per cache period. The European Air Quality Index itself is air-quality law and lives next
to the compliance packs (`ecocluster.rules.compliance.eaqi`).
"""

from __future__ import annotations

from ecocluster.api.public.cache import CachedBody, PublicCache, etag_of
from ecocluster.api.public.policy import PublicPolicy
from ecocluster.api.public.routes import mount_public
from ecocluster.api.public.summary import build_summary

__all__ = ["CachedBody", "PublicCache", "PublicPolicy", "build_summary", "etag_of", "mount_public"]
