#!/usr/bin/env bash
# Fetches Apache Cassandra (the CQL engine Amazon Keyspaces emulates) from Maven Central only, as the
# cassandra-all jar and its runtime dependencies, into .engines/cassandra-<version>/lib (cached: a second run
# returns at once). No distribution tarball: tests/e2e/cassandra.py starts CassandraDaemon from these jars
# with a configuration it generates per run.
set -euo pipefail

CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}   # keep in step with docs/testing.md
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.engines/cassandra-$CASSANDRA_VERSION"

if [[ -f $dest/lib/cassandra-all-$CASSANDRA_VERSION.jar && -f $dest/.complete ]]; then
    echo "cassandra: $CASSANDRA_VERSION cached in $dest/lib"
    exit 0
fi

work="$dest.tmp"
rm -rf "$work"
mkdir -p "$work"
# A throwaway project whose only dependency is cassandra-all; copy-dependencies resolves its runtime closure.
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tenancy.local.engines</groupId>
  <artifactId>cassandra</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
# The plugin is pinned so the closure resolves the same way whatever Maven the machine has.
mvn -q -B -f "$work/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib"
test -f "$work/lib/cassandra-all-$CASSANDRA_VERSION.jar"
ls "$work"/lib/jamm-*.jar >/dev/null   # the -javaagent the daemon needs to measure memtables
rm -rf "$dest"
mv "$work" "$dest"
touch "$dest/.complete"
echo "cassandra: $CASSANDRA_VERSION in $dest/lib ($(ls "$dest/lib" | wc -l) jars)"
