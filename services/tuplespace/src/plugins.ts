import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackplaneError } from '@backplane/runtime';
import type { PluginModule, TSFactory, TSHandler } from './command';
import { counterPlugin } from './plugins/counter';
import { staleTuplePlugin } from './plugins/stale-tuple';

/**
 * The seed's TSFExtendable: a factory that handles the commands it was given handlers for with
 * AddHandler, and passes every other command down the stack.
 */
export function extendableFactory(): TSFactory {
  const handlers = new Map<string, { name: string; handler: TSHandler }>();
  return {
    name: 'extendable',
    handles: (command) => handlers.get(command)?.handler,
    addHandler(command, handlerName, handler) {
      const previous = handlers.get(command)?.handler;
      handlers.set(command, { name: handlerName, handler });
      // a handler no command uses any more stops what it started
      if (previous && previous !== handler && ![...handlers.values()].some((h) => h.handler === previous))
        previous.close?.();
    },
    handlerNames: () => Object.fromEntries([...handlers].map(([c, h]) => [c, h.name])),
    open(ts) {
      // one handler module may serve several commands: resume it once
      for (const h of new Set([...handlers.values()].map((x) => x.handler))) h.open?.(ts);
    },
    close() {
      for (const h of new Set([...handlers.values()].map((x) => x.handler))) h.close?.();
    },
  };
}

const BUILTIN: PluginModule = {
  factories: { extendable: extendableFactory },
  handlers: { ...staleTuplePlugin.handlers, ...counterPlugin.handlers },
};

const NAME = /^[a-z][a-z0-9-]{0,63}$/;

/**
 * Finds factories and handlers by module name: the built-in ones, then `<pluginsDir>/<name>.js` (or
 * `<name>/index.js`). Only names are accepted from the network, never code; a plugin is whatever the
 * operator put in the directory.
 */
export class PluginLoader {
  private readonly cache = new Map<string, PluginModule>();

  constructor(private readonly pluginsDir: string | undefined) {}

  private module(name: string): PluginModule | undefined {
    if (!NAME.test(name))
      throw BackplaneError.badParameter(
        `plugin names are lower-case words with dashes, got ${JSON.stringify(name)}`,
      );
    if (BUILTIN.factories?.[name] || BUILTIN.handlers?.[name]) return BUILTIN;
    if (!this.pluginsDir) return undefined;
    const cached = this.cache.get(name);
    if (cached) return cached;
    const dir = resolve(this.pluginsDir);
    const file = [join(dir, `${name}.js`), join(dir, name, 'index.js')].find((f) => existsSync(f));
    if (!file) return undefined;
    const mod = require(file) as PluginModule;
    this.cache.set(name, mod);
    return mod;
  }

  factory(name: string): TSFactory {
    const make = this.module(name)?.factories?.[name];
    if (!make)
      throw BackplaneError.notFound(`no factory module named ${name}`, { reason: 'PLUGIN_NOT_FOUND' });
    return make();
  }

  handler(name: string): TSHandler {
    const make = this.module(name)?.handlers?.[name];
    if (!make)
      throw BackplaneError.notFound(`no handler module named ${name}`, { reason: 'PLUGIN_NOT_FOUND' });
    return make();
  }
}
