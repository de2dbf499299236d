// One Server-Sent Events stream for the whole app; views subscribe while they are shown.

// The server names each event by its kind; EventSource only delivers named events to listeners
// registered for that exact name, so every kind the API documents is listed here.
const KINDS = ['state', 'deleted', 'operation', 'observer', 'created', 'disk', 'snapshot', 'error', 'message'];

let source = null;
const subscribers = new Set();

function dispatch(message) {
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  for (const fn of [...subscribers]) fn(event);
}

/** Open the stream (idempotent). EventSource resumes with Last-Event-ID after a drop by itself. */
export function connect() {
  if (source) return;
  source = new EventSource('/api/v1/events');
  for (const kind of KINDS) source.addEventListener(kind, dispatch);
  source.addEventListener('open', () => document.documentElement.dataset.live = 'open');
  source.addEventListener('error', () => {
    document.documentElement.dataset.live = source && source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
  });
}

export function disconnect() {
  if (!source) return;
  source.close();
  source = null;
  delete document.documentElement.dataset.live;
}

/** Call `fn(event)` for every event until the returned function is called. */
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

/** Coalesce bursts of events into one call, `wait` ms after the last one. */
export function debounce(fn, wait = 120) {
  let timer = null;
  const run = () => {
    timer = null;
    fn();
  };
  const wrapped = () => {
    clearTimeout(timer);
    timer = setTimeout(run, wait);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}
