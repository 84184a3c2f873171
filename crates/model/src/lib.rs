//! The paper's 3D CNN (filled in by the model issue).
