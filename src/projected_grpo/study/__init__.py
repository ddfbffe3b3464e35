"""The study (SPEC §7): statistics, the verdict, figures and the benchmark totals."""
