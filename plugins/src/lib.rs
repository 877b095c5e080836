//! Optional cptrain components, each behind a cargo feature.
//!
//! Backends that need system libraries (OpenMPI for `mpi`, the CUDA driver for
//! `cuda` and `nccl`) live here so that the default build needs none of them.
//! The binary links this crate from its composition root (`src/lib.rs`), which
//! is what makes `inventory` see the components registered here.
