-- Each node counts the leases it holds per webhook in memory (store/leases.rs). The count
-- per claim read through this index was a tenth of the database's time in the throughput
-- benchmark, and the index one more entry written with every lease.
DROP INDEX deliveries_leased;
