//! The integration tests, one binary (each file a module) so that burn is linked once.

mod backbone_parity;
mod bench_torch;
mod cache;
mod cli;
mod cli_data;
mod cli_train;
mod common;
mod data_check;
mod data_decode;
mod data_encode;
mod data_formats;
mod data_loader;
mod data_stream;
mod demo;
mod dist;
mod eval_plots;
mod faces_cli;
mod faces_detect;
mod fuzz;
mod layers;
mod live;
mod method_parity;
mod methods;
mod side_branch;
mod synth;
mod train;
