#!/bin/sh
# Re-fetches the vendored browser libraries from the npm registry.
#
# Nothing here has a build step, so the official builds are copied byte for byte:
# - socket.io-client's ESM build, which the page loads;
# - uPlot's minified browser build, stylesheet and license, which the monitoring page loads
#   (web/app/charts.js) and the rehearsal inlines into report.html
#   (integration/rehearse/src/report/html.rs).
# The versions are the ones pinned (exactly) in web/package.json and web/package-lock.json; npm
# checks each package's integrity hash from the lock file.
#
# To move to another version:  npm install --prefix web --save-exact --save-dev PACKAGE@X.Y.Z
# then run this script, rebuild (the files are embedded into the binaries) and run the tests;
# `cargo test -p flash --test browser` fails while a copy differs from its pinned package.
#
# Usage: sh web/vendor/update.sh   (from anywhere)
set -eu
web="$(cd "$(dirname "$0")/.." && pwd)"
cd "$web"
npm ci --no-audit --no-fund
version() { node -p "require('./node_modules/$1/package.json').version"; }
cp node_modules/socket.io-client/dist/socket.io.esm.min.js vendor/socket.io.esm.min.js
echo "vendored socket.io-client $(version socket.io-client): web/vendor/socket.io.esm.min.js"
cp node_modules/uplot/dist/uPlot.iife.min.js vendor/uPlot.iife.min.js
cp node_modules/uplot/dist/uPlot.min.css vendor/uPlot.min.css
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE
echo "vendored uplot $(version uplot): web/vendor/uPlot.iife.min.js, uPlot.min.css, uPlot.LICENSE"
