/** What `poolscope` and `poolscope/dummy` both export, besides their `Pool` and `Process`. */
import { availableParallelism } from 'node:os';

export { AsyncResult, IMapIterator, MapResult } from './async-result';
export type { Backend } from './backend/worker-handle';
export { registerErrorClass } from './error-codec';
export * from './errors';
export {
  defaultChunksize,
  Pool as BasePool,
  type ApplyOptions,
  type IMapOptions,
  type MapOptions,
  type PoolOptions,
  type TaskFunction,
  type WorkerExitInfo,
} from './pool';
export type { ProcessOptions } from './process';
export {
  Manager,
  type ConnectOptions,
  type ManagedType,
  type ManagerOptions,
} from './manager/manager';
export type { ManagerAddress } from './manager/address';
export type { AuthKey } from './manager/auth';
export {
  ArrayProxy,
  BarrierProxy,
  BaseProxy,
  BoundedSemaphoreProxy,
  ConditionProxy,
  DictProxy,
  EventProxy,
  ListProxy,
  LockProxy,
  NamespaceProxy,
  QueueProxy,
  RLockProxy,
  SemaphoreProxy,
  ValueProxy,
  type AnyProxy,
} from './manager/proxies';
export * from './shared/ctypes';
export { BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore } from './shared/sync';
export {
  RawArray,
  RawValue,
  SharedArray,
  SharedArray as Array,
  Value,
  type ValueOptions,
} from './shared/values';

/** Number of CPUs available to this process, the default pool size (Python's `cpu_count`). */
export function cpuCount(): number {
  return availableParallelism();
}
