// `await using` (TypeScript 5.2+, explicit resource management) needs
// Symbol.asyncDispose at run time. Node has it from 20.4 and 18.18; on an older Node 20
// it is created here the way the TypeScript 5.2 release notes recommend, so handles are
// disposable everywhere the package runs (engines: node >= 20).
const symbols = Symbol as { asyncDispose?: symbol; dispose?: symbol };
symbols.asyncDispose ??= Symbol.for('Symbol.asyncDispose');
symbols.dispose ??= Symbol.for('Symbol.dispose');

export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose;
