-- dmarcpipe_sum(bigint): the sum of bigint counts as a bigint, which refuses a sum past 64
-- bits with SQLSTATE 22003 (numeric_value_out_of_range) instead of widening it (issue 13).
--
-- PostgreSQL's sum(bigint) is numeric: exact however large, but adding up hundreds of
-- thousands of rollup rows in numeric takes most of a rollup's time. The rollups by source
-- and by the keys of the sources add up with this aggregate first and, should it refuse, run
-- again with sum() (store/src/rollup.rs, Sums), so their figures stay exact.
--
-- int8pl is the bigint + operator: strict, so the first non-NULL count starts the sum and
-- NULLs are skipped, and no rows give NULL, as with sum(). It combines partial sums the same
-- way, so the aggregate may run in parallel.

CREATE AGGREGATE dmarcpipe_sum(bigint) (
    SFUNC = int8pl,
    STYPE = bigint,
    COMBINEFUNC = int8pl,
    PARALLEL = SAFE
);
