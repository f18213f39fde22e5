//! Service registry semantics: ClusterIP and NodePort allocation, defaulting, validation.
