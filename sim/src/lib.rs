//! PDTP simulator (being built; see issue 3).
