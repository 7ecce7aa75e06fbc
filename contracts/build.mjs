#!/usr/bin/env node
// Compiles FLCoordinator.sol with the pinned solc-js (standard-JSON input) and writes the
// deterministic artifact shipped as package data in chainlearn_ray/chain/FLCoordinator.json.
//
// Usage: node build.mjs [--out PATH] [--check]
//   --out PATH  write the artifact to PATH instead of the package-data location
//   --check     compile and compare with the existing artifact; exit 1 when they differ
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const SOURCE_NAME = "FLCoordinator.sol";
const CONTRACT_NAME = "FLCoordinator";
const DEFAULT_OUT = resolve(here, "..", "chainlearn_ray", "chain", "FLCoordinator.json");

export const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 1000000 },
  viaIR: true,
  metadata: { bytecodeHash: "ipfs" },
};

function sha256(text) {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function parseArgs(argv) {
  const args = { out: DEFAULT_OUT, check: false };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--out") {
      args.out = resolve(argv[i + 1]);
      i += 1;
    } else if (argv[i] === "--check") {
      args.check = true;
    } else {
      throw new Error(`unknown argument ${argv[i]} (use --out PATH or --check)`);
    }
  }
  return args;
}

function loadSolc() {
  if (!existsSync(join(here, "node_modules", "solc"))) {
    throw new Error("contracts/node_modules is missing: run `npm ci` in contracts/ first");
  }
  return require("solc");
}

// Sorted keys at every level, two-space indentation and a trailing newline: byte-stable output.
function canonicalJson(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]));
    }
    return v;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

export function compile() {
  const solc = loadSolc();
  const sourceText = readFileSync(join(here, SOURCE_NAME), "utf8");
  const loaded = { [SOURCE_NAME]: sourceText };
  const findImports = (path) => {
    const file = join(here, "node_modules", path);
    if (!existsSync(file)) return { error: `import not found: ${path}` };
    const contents = readFileSync(file, "utf8");
    loaded[path] = contents;
    return { contents };
  };
  const input = {
    language: "Solidity",
    sources: { [SOURCE_NAME]: { content: sourceText } },
    settings: {
      ...SETTINGS,
      outputSelection: {
        [SOURCE_NAME]: {
          [CONTRACT_NAME]: [
            "abi",
            "evm.bytecode.object",
            "evm.deployedBytecode.object",
            "evm.deployedBytecode.immutableReferences",
          ],
        },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(`${e.formattedMessage}\n`);
  if (errors.length > 0) throw new Error(`solc reported ${errors.length} error(s)`);
  const contract = output.contracts[SOURCE_NAME][CONTRACT_NAME];
  const ozPackage = JSON.parse(
    readFileSync(join(here, "node_modules", "@openzeppelin", "contracts", "package.json"), "utf8"),
  );
  const sources = Object.fromEntries(Object.entries(loaded).map(([k, v]) => [k, sha256(v)]));
  return {
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    compiler: { name: "solc-js", version: solc.version() },
    contractName: CONTRACT_NAME,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    // Byte ranges of the runtime code that the constructor fills with immutable values (the
    // deployment's mode and parameters): zero here, so a deployed contract's code differs there.
    immutableReferences: Object.values(contract.evm.deployedBytecode.immutableReferences || {})
      .flat()
      .map(({ start, length }) => ({ length, start }))
      .sort((a, b) => a.start - b.start),
    dependencies: { "@openzeppelin/contracts": ozPackage.version },
    settings: SETTINGS,
    source: `contracts/${SOURCE_NAME}`,
    sourceSha256: sha256(sourceText),
    sources,
  };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const text = canonicalJson(compile());
  if (args.check) {
    const current = existsSync(args.out) ? readFileSync(args.out, "utf8") : "";
    if (current !== text) {
      process.stderr.write(`${args.out} is stale: run \`npm run build\` in contracts/\n`);
      process.exit(1);
    }
    process.stdout.write(`${args.out} is up to date\n`);
    return;
  }
  writeFileSync(args.out, text);
  process.stdout.write(`wrote ${args.out} (sha256 ${sha256(text)})\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`build failed: ${err.message}\n`);
    process.exit(2);
  }
}
