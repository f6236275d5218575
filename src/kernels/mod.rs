//! Hand-written CPU kernels where burn's general operations leave a measured gap: burn
//! backend extensions with a Flex (CPU) implementation, a hand-written backward under
//! autodiff, and burn's own operations on every other device.

pub mod depthwise;

pub use depthwise::{DepthwiseGeom, depthwise_conv3d};
