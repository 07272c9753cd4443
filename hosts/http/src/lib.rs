//! placeholder-free stub during bootstrap
