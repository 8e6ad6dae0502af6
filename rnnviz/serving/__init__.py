"""Serving policy: what a request may cost (:mod:`.cost`), the cooperative deadline that stops it
(:mod:`.deadline`), the byte-bounded caches results live in (:mod:`.cache`) and the thread
setting for small sequential work (:mod:`.threads`)."""
