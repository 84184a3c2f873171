//! Relevance methods (filled in by the relevance issue).
