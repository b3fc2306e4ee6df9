/**
 * Protocol v2: the one event language every producer (the Node library, the Python tap) speaks
 * and every consumer (the Store, the CLI, trace files, the Perfetto export) reads.
 *
 * Defined once, here, with TypeBox: the TypeScript types come from these definitions, and so
 * does the JSON Schema (`docs/protocol.schema.json`, written by the build) that tests validate
 * every emitted event against. Nothing here is specific to Node: ids are strings or integers,
 * times are milliseconds, values are JSON. See docs/protocol.md.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION } from './version';

export { OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION };

/** JSON-safe value. Non-JSON values are tagged objects: see docs/protocol.md, "Values". */
const Json = Type.Unknown({ description: 'A JSON value; non-JSON values are tagged objects' });

export const StackFrame = Type.Object(
  {
    fn: Type.Optional(Type.String()),
    file: Type.Optional(Type.String()),
    line: Type.Optional(Type.Integer({ minimum: 1 })),
    column: Type.Optional(Type.Integer({ minimum: 1 })),
    /** The frame as the runtime printed it. */
    raw: Type.String(),
  },
  { additionalProperties: false },
);
export type StackFrame = Static<typeof StackFrame>;

export const ThrownKindSchema = Type.Union(
  [
    'error',
    'string',
    'number',
    'bigint',
    'boolean',
    'null',
    'undefined',
    'object',
    'symbol',
    'function',
  ].map((k) => Type.Literal(k)),
);

/** An error, or any other thrown value, as one structured record. */
export const ErrorInfo = Type.Recursive(
  (Self) =>
    Type.Object(
      {
        /** What was thrown: an Error, or a value of another kind. */
        thrown: ThrownKindSchema,
        name: Type.String(),
        message: Type.String(),
        stack: Type.Optional(Type.String()),
        frames: Type.Array(StackFrame),
        code: Type.Optional(Type.Union([Type.String(), Type.Number()])),
        /** Own properties other than name, message, stack, cause, errors. */
        props: Type.Record(Type.String(), Json),
        cause: Type.Optional(Self),
        /** AggregateError members. */
        errors: Type.Optional(Type.Array(Self)),
        /** The thrown value itself, when it was not an Error. */
        value: Type.Optional(Json),
      },
      { additionalProperties: false },
    ),
  { $id: 'ErrorInfo' },
);
export type ErrorInfo = Static<typeof ErrorInfo>;

const Envelope = {
  /** Protocol version: 2 from this library; 1 in older traces, which had no `tasks` event. */
  v: Type.Union([Type.Literal(OLDEST_PROTOCOL_VERSION), Type.Literal(PROTOCOL_VERSION)]),
  /** Milliseconds since the Unix epoch, with sub-millisecond precision, from a monotonic clock. */
  ts: Type.Number(),
  /** Process that emitted the event. */
  pid: Type.Integer(),
  /** Thread that emitted it, where the runtime has thread ids (0 is the main thread). */
  tid: Type.Optional(Type.Integer()),
  /** The run the event belongs to (one `poolscope run`, one launch from the editor). */
  run: Type.String(),
};

function event<T extends string, P extends Record<string, TSchema>>(type: T, props: P) {
  return Type.Object(
    { ...Envelope, type: Type.Literal(type), ...props },
    { additionalProperties: false, title: type },
  );
}

/** Pools are named `<pid>:<n>` so pools in different processes of one run never collide. */
const PoolId = Type.String({ description: 'pid:number' });
const WorkerNo = Type.Integer({ minimum: 1, description: "the pool's own worker number" });
const TaskId = Type.Integer({ minimum: 1 });
const Backend = Type.Union([Type.Literal('process'), Type.Literal('thread')]);
const ExitReason = Type.Union(
  [
    'normal',
    'recycled',
    'timeout',
    'terminated',
    'crash',
    'killed',
    'out-of-memory',
    'uncaught',
    'startup',
  ].map((r) => Type.Literal(r)),
);
const TaskKind = Type.Union(
  ['apply', 'map', 'starmap', 'imap', 'imapUnordered'].map((k) => Type.Literal(k)),
);

export const RunStart = event('run.start', {
  argv: Type.Array(Type.String()),
  cwd: Type.String(),
  runtime: Type.String({ description: 'e.g. node v20.20.2, python 3.11.7' }),
});
export const RunEnd = event('run.end', {
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  durationMs: Type.Number(),
});
export const PoolCreated = event('pool.created', {
  pool: PoolId,
  backend: Backend,
  size: Type.Integer({ minimum: 1 }),
  module: Type.String(),
  options: Type.Record(Type.String(), Json),
});
export const PoolClosed = event('pool.closed', { pool: PoolId });
export const PoolTerminated = event('pool.terminated', { pool: PoolId });
export const WorkerStarted = event('worker.started', {
  pool: PoolId,
  worker: WorkerNo,
  /** The worker's own pid (process backend) and thread id (thread backend). */
  workerPid: Type.Optional(Type.Integer()),
  workerTid: Type.Optional(Type.Integer()),
});
export const WorkerExited = event('worker.exited', {
  pool: PoolId,
  worker: WorkerNo,
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  reason: ExitReason,
  /** Tasks it had not finished, each rejected with WorkerExitError. */
  lostTasks: Type.Array(TaskId),
  stderrTail: Type.Optional(Type.String()),
});
export const TaskSubmitted = event('task.submitted', {
  pool: PoolId,
  task: TaskId,
  fn: Type.String(),
  kind: TaskKind,
  /** Bounded preview of the arguments (or of a chunk's first items). */
  args: Type.String(),
  /** Items in a map chunk; 1 otherwise. */
  items: Type.Integer({ minimum: 0 }),
});
export const TaskStarted = event('task.started', {
  pool: PoolId,
  task: TaskId,
  worker: WorkerNo,
});
export const TaskSucceeded = event('task.succeeded', {
  pool: PoolId,
  task: TaskId,
  /** Repeated from task.submitted so that an end event stands on its own. */
  fn: Type.String(),
  worker: WorkerNo,
  result: Type.String({ description: 'bounded preview' }),
  /** From start to end in the worker, and from submission to start. */
  durationMs: Type.Number(),
  queuedMs: Type.Number(),
});
export const TaskFailed = event('task.failed', {
  pool: PoolId,
  task: TaskId,
  fn: Type.String(),
  /** Absent when the task failed before any worker ran it (terminate, unsendable argument). */
  worker: Type.Optional(WorkerNo),
  error: Type.Ref(ErrorInfo),
  durationMs: Type.Optional(Type.Number()),
});
export const CallbackInvoked = event('callback.invoked', {
  pool: PoolId,
  task: TaskId,
  which: Type.Union([Type.Literal('callback'), Type.Literal('errorCallback')]),
  /** The callback threw: the error, which the pool reported and survived. */
  error: Type.Optional(Type.Ref(ErrorInfo)),
});
export const GetTimedOut = event('result.timeout', {
  pool: PoolId,
  task: TaskId,
  timeoutMs: Type.Number(),
});
export const ProcessStarted = event('process.started', {
  name: Type.String(),
  target: Type.String(),
  backend: Backend,
  processPid: Type.Optional(Type.Integer()),
  processTid: Type.Optional(Type.Integer()),
});
export const ProcessExited = event('process.exited', {
  name: Type.String(),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  error: Type.Optional(Type.Ref(ErrorInfo)),
});
export const Output = event('output', {
  stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('log')]),
  text: Type.String(),
});
/** Shared objects are named `<pid>:<n>`, unique within a run. */
const SharedId = Type.String({ description: 'pid:number' });
export const SharedCreated = event('shared.created', {
  id: SharedId,
  /** Value, Array, RawValue, RawArray, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition. */
  kind: Type.String(),
  /** The element type: `'i'`, `'d'`, `Struct Point`; empty for locks. */
  ctype: Type.String(),
  length: Type.Integer({ minimum: 0 }),
  lock: Type.Boolean(),
  /** Where it was created: the first frame outside Poolscope. */
  creator: Type.Optional(Type.String()),
});
export const SharedSampled = event('shared.sampled', {
  id: SharedId,
  /**
   * A Value's value; for an Array, `{ length, window, min, max }` (window: the first items);
   * for a Semaphore its count, an Event whether it is set, a lock whether it is held.
   */
  value: Json,
  /** Acquisitions of its lock that had to wait, so far. */
  contention: Type.Optional(Type.Integer({ minimum: 0 })),
});
/** Managers are named `<pid>:<n>` after the process that started them. */
const ManagerId = Type.String({ description: 'pid:number' });
const ManagerAddress = Type.String({ description: 'unix:/path/to/socket or tcp:host:port' });
export const ManagerStarted = event('manager.started', {
  manager: ManagerId,
  address: ManagerAddress,
  /** The server process. */
  serverPid: Type.Integer(),
});
export const ManagerStopped = event('manager.stopped', {
  manager: ManagerId,
  address: ManagerAddress,
  /** `stopped` by its owner (or its owner's exit); `killed` by a signal; `exited` on its own. */
  reason: Type.Union([Type.Literal('stopped'), Type.Literal('killed'), Type.Literal('exited')]),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
});
export const ManagerOps = event('manager.ops', {
  manager: ManagerId,
  /** Calls served so far per proxy type (`dict`, `list`, `Lock`, `Value`, ...): running totals. */
  ops: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  /** Connected clients and live objects, now. */
  clients: Type.Integer({ minimum: 0 }),
  objects: Type.Integer({ minimum: 0 }),
});
export const EventsDropped = event('events.dropped', {
  count: Type.Integer({ minimum: 1 }),
  /** How many of each type were dropped. */
  types: Type.Record(Type.String(), Type.Integer()),
});

/**
 * Task events of one process, batched: the records of task.submitted, task.started and
 * task.succeeded events, in order (see task-batch.ts and docs/protocol.md).
 */
export const TasksBatch = Type.Object(
  {
    ...Envelope,
    v: Type.Literal(PROTOCOL_VERSION),
    type: Type.Literal('tasks'),
    /** Pool ids the records name by index. */
    pools: Type.Array(PoolId),
    /** Function names the records name by index. */
    fns: Type.Array(Type.String()),
    /** Previews of arguments and results the records name by index. */
    strings: Type.Array(Type.String()),
    /** The records: base64 of little-endian 32-bit integers. */
    ops: Type.String({ contentEncoding: 'base64' }),
  },
  { additionalProperties: false, title: 'tasks' },
);

export const EVENT_SCHEMAS = [
  RunStart,
  RunEnd,
  PoolCreated,
  PoolClosed,
  PoolTerminated,
  WorkerStarted,
  WorkerExited,
  TaskSubmitted,
  TaskStarted,
  TaskSucceeded,
  TaskFailed,
  CallbackInvoked,
  GetTimedOut,
  ProcessStarted,
  ProcessExited,
  Output,
  SharedCreated,
  SharedSampled,
  ManagerStarted,
  ManagerStopped,
  ManagerOps,
  EventsDropped,
  TasksBatch,
] as const;

export const TraceEvent = Type.Union([...EVENT_SCHEMAS], { $id: 'TraceEvent' });
export type TraceEvent = Static<typeof TraceEvent>;
export type TraceEventType = TraceEvent['type'];
export type EventOf<T extends TraceEventType> = Extract<TraceEvent, { type: T }>;

/** The JSON Schema of one event line, with ErrorInfo as a definition. */
export function protocolJsonSchema(): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      $schema: 'http://json-schema.org/draft-07/schema#',
      title: 'Poolscope trace event, protocol v2 (reads v1)',
      definitions: { ErrorInfo },
      ...TraceEvent,
      $id: 'https://poolscope.dev/protocol/v2.json',
    }),
  ) as Record<string, unknown>;
}
