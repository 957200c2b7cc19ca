// Package results owns a run's directory: its layout (runs/<test>/<timestamp>/ by default, the
// latest link), and the files written into it — test.json, results.json, for an invalid
// verdict linearizability.html, and for every run and check report.html with latency.png
// and rate.png beside it — the JUnit report, and faultline serve, which browses a
// results directory. It shows what the checker decided and never decides anything
// itself. Every file is written through a temporary file and a rename, so a reader
// (serve, among others) never sees half of one.
//
// A report is built in one pass over the history and the result:
//
//  1. the history is paired into operations and fault windows as the checker pairs
//     them (checker.Operations, checker.FaultWindows), so that the page counts and
//     times exactly what was judged;
//  2. the plots — latency and throughput, each series binned beyond maxPlotPoints,
//     every fault window shaded and numbered — are described once (chart) and drawn
//     twice (plotdraw.go): as SVG for the page and as PNG for the files beside it;
//  3. the node lanes and each failing key's timeline (a window of maxTimelineOps
//     operations around the one blamed) are laid out as positioned HTML;
//  4. html/template renders the page, escaping every value from the history, the spec
//     and the result; the plots' SVG is the only markup put in as is, and inlineSVG
//     checks it holds drawing elements only.
//
// What a bound leaves out is said on the page.
package results
