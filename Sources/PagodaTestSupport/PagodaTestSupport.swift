// PagodaTestSupport: see shared/DESIGN.md §2 for what this module owns.
