//! PDTP mio runtime (being built; see issue 4).
