//! Evaluation: what a trained model's outputs mean, and how a run shows it.
//!
//! ```text
//! logits [N*V, K] --aggregate_views--> probabilities [N, K] --evaluate--> Metrics
//!     Metrics --to_json / plot_confusion / markdown_table--> report files
//!     folds' Metrics --FoldSummary--> mean ± std (DFEW, MAFW)
//! training loop --MetricsLog (JSONL)--> read_log --curves_from_log--> plot_curves
//! ```
//!
//! - [`metrics`]: confusion matrix, UAR/WAR/top-k/mean class accuracy, view aggregation,
//!   fold summaries;
//! - [`plot`]: PNG heatmaps, curves and bar charts (fonts compiled in);
//! - [`report`]: Markdown / terminal tables and the append-only metrics log.
//!
//! Everything here takes plain slices and vectors: no tensor, no device.

pub mod compare;
mod glyphs;
pub mod metrics;
pub mod plot;
pub mod report;

pub use metrics::{
    Aggregate, ConfusionMatrix, FoldSummary, Metrics, aggregate_views, evaluate, softmax_rows,
};
pub use report::{MetricsLog, curves_from_log, markdown_table, plain_table, read_log};
