"""A C2SP tlog-witness (c2sp.org/tlog-witness): cosigns checkpoints of the logs it is told
about, and only those consistent with the last one it cosigned. Meant to run under another
team than the factory's, with its own key and its own store (`codefactory witness serve`)."""
