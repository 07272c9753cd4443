#!/bin/sh
# Re-fetches the vendored Socket.IO browser client from the npm registry.
#
# The page has no build step, so it loads the official ESM build of socket.io-client, copied
# here byte for byte. The version is the one pinned (exactly) in web/package.json and
# web/package-lock.json; npm checks the package's integrity hash from the lock file.
#
# To move to another version:  npm install --prefix web --save-exact --save-dev socket.io-client@X.Y.Z
# then run this script, rebuild (the file is embedded into the binary) and run the tests;
# `cargo test -p flash --test browser` fails while this copy differs from the pinned package.
#
# Usage: sh web/vendor/update.sh   (from anywhere)
set -eu
web="$(cd "$(dirname "$0")/.." && pwd)"
cd "$web"
npm ci --no-audit --no-fund
src="node_modules/socket.io-client/dist/socket.io.esm.min.js"
version="$(node -p "require('./node_modules/socket.io-client/package.json').version")"
cp "$src" vendor/socket.io.esm.min.js
echo "vendored socket.io-client $version: web/vendor/socket.io.esm.min.js"
