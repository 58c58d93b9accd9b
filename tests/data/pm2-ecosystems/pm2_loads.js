#!/usr/bin/env node
// Does PM2 load this ecosystem file? What `pm2 start FILE` does before it starts anything
// (lib/API.js `_startJson`): Common.parseConfig(readFileSync(file), file), then the apps
// are config.apps, else config.pm2, else the config itself, wrapped in an array, then
// Common.verifyConfs(apps); an Error result or a throw means PM2 refuses the file. So
// does an app left without a script: the first check PM2 makes when it starts an app
// (Common.prepareAppConf: 'No script path - aborting'), before it looks at the disk.
//
//   node pm2_loads.js FILE        prints one line of JSON:
//   {"file", "loads", "error", "apps": [{"name", "script", "instances", "exec_mode"}]}
//
// PM2 is found at $PM2_PACKAGE, else bench/.cache/pm2/node_modules/pm2 of this repository
// (bench/pm2.py installs it). The process runs in the file's directory (a relative
// require, `./.env` and `__dirname` resolve as under PM2) with PM2_HOME a new temporary
// directory unless one is given: never the real ~/.pm2.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node pm2_loads.js FILE\n');
  process.exit(2);
}
const absolute = path.resolve(file);
if (!process.env.PM2_HOME) {
  process.env.PM2_HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'pm2-home-'));
}
process.chdir(path.dirname(absolute));

const pm2 = process.env.PM2_PACKAGE ||
  path.resolve(__dirname, '..', '..', '..', 'bench', '.cache', 'pm2', 'node_modules', 'pm2');

// Whatever the file or PM2 prints while loading goes to stderr: stdout is the verdict.
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  console[level] = (...args) => process.stderr.write(args.join(' ') + '\n');
}

function firstLine(error) {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n').find((line) => line.trim()) || text;
}

function verdict() {
  const Common = require(path.join(pm2, 'lib', 'Common.js'));
  if (!Common.isConfigFile(absolute)) {
    return { loads: false, error: 'not a file name PM2 loads as configuration', apps: [] };
  }
  let config;
  try {
    config = Common.parseConfig(fs.readFileSync(absolute), absolute);
  } catch (e) {
    return { loads: false, error: `malformated: ${firstLine(e)}`, apps: [] };
  }
  let apps;
  try {
    if (config.apps) apps = config.apps;
    else if (config.pm2) apps = config.pm2;
    else apps = config;
    if (!Array.isArray(apps)) apps = [apps];
    apps = Common.verifyConfs(apps);
  } catch (e) {
    return { loads: false, error: firstLine(e), apps: [] };
  }
  if (apps instanceof Error) {
    return { loads: false, error: firstLine(apps), apps: [] };
  }
  const scriptless = apps.findIndex((app) => !app.script);
  if (scriptless !== -1) {
    return { loads: false, error: `app ${scriptless}: No script path - aborting`, apps: [] };
  }
  return {
    loads: true,
    error: null,
    apps: apps.map((app) => ({
      name: app.name === undefined ? null : app.name,
      script: app.script === undefined ? null : app.script,
      instances: app.instances === undefined ? null : app.instances,
      exec_mode: app.exec_mode === undefined ? null : app.exec_mode,
    })),
  };
}

const result = { file, ...verdict() };
process.stdout.write(JSON.stringify(result) + '\n');
// A file may leave timers or handles behind (PM2 would go on to start the apps).
process.exit(0);
