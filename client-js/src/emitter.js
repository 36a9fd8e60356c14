/**
 * A small event emitter that runs in browsers and in Node, for the session and room classes.
 * It has no wildcard listeners and no `once` bookkeeping beyond what on() returns.
 */

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this.handlers = new Map();
  }

  /**
   * Registers fn for events of type name.
   * @param {string} name
   * @param {(value: any) => void} fn
   * @returns {() => void} a function that removes the listener.
   */
  on(name, fn) {
    if (typeof fn !== 'function') throw new TypeError(`listener of ${JSON.stringify(name)} must be a function`);
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }

  /** Removes a listener registered with on(). */
  off(name, fn) {
    this.handlers.get(name)?.delete(fn);
    return this;
  }

  /**
   * Calls the listeners of name with value. A listener that throws does not stop the others:
   * its exception is rethrown from a microtask, where it reaches the host's error reporting.
   */
  emit(name, value) {
    const set = this.handlers.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
