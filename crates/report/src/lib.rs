//! Regional tables, figures and reports (filled in by the report issue).
