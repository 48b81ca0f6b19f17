-- Each process counts the leases it holds per webhook in memory (store/leases.rs), so no
-- query counts leased rows any more, and this index was one more entry written per lease.
DROP INDEX deliveries_leased;
