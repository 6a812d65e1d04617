"""Client-side fault injection: a pure, seeded plan (:mod:`.plan`) and its injector."""
