//! The visual report: SVG drawn by us from rollup figures, for the self-contained HTML page.
//!
//! [`chart`] draws daily stacked bars, top-N horizontal bars and a share meter; [`map`] draws a
//! world map shaded by message volume with the failure share hatched over it. Both return SVG
//! text (no JavaScript), scaled by `viewBox` to any width, with `role="img"`, `<title>` and
//! `<desc>`, every label XML-escaped, and colours set through CSS classes (`c-compliant`,
//! `c-fail`, `m-3`, ...) whose defaults, light and dark, sit in a zero-specificity `<style>` so
//! the page's own CSS wins. Pure: no I/O; output is deterministic for the same input.
//!
//! [`data`] holds the figures the store gathers; [`page`] renders them with those drawings as
//! one HTML file (the full report, or the short executive version printed to PDF).

pub mod chart;
pub mod data;
pub mod map;
pub mod page;
