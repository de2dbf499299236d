// Machine actions (start, stop, …) shared by the machines table and the detail view:
// what each state allows, the pending state while an operation runs, and its outcome.
import { ApiError, del, post, waitForOperation } from './api.js';
import { askDialog, errorText, h, toast } from './dom.js';

/** The state machine of docs/api.md: which actions each state allows. */
export const ALLOWED = {
  provisioning: [],
  stopped: ['start', 'delete', 'clone'],
  starting: [],
  running: ['stop', 'restart', 'delete'],
  stopping: [],
  restarting: [],
  deleting: [],
  error: ['start', 'delete'],
};

export const ACTIONS = [
  { name: 'start', label: 'Start', pending: 'starting…' },
  { name: 'stop', label: 'Stop', pending: 'stopping…' },
  { name: 'restart', label: 'Restart', pending: 'restarting…' },
  { name: 'clone', label: 'Clone', pending: 'cloning…' },
  { name: 'delete', label: 'Delete', pending: 'deleting…', danger: true },
];

const pending = new Map(); // machine id -> label
const listeners = new Set();

export function pendingLabel(machineId) {
  return pending.get(machineId) ?? null;
}

/** Call `fn()` whenever a machine's pending state changes, until the returned function is called. */
export function onPendingChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setPending(machineId, label) {
  if (label) pending.set(machineId, label);
  else pending.delete(machineId);
  listeners.forEach((fn) => fn(machineId));
}

/** Track an operation: the machine shows `label` until it finishes; failures become a message. */
export async function track(machineId, operation, label, what) {
  setPending(machineId, label);
  try {
    const done = await waitForOperation(operation);
    if (done.status === 'failed') {
      toast(errorText(`${what} failed`, new ApiError(0, 'operation_failed', done.error ?? 'unknown error')), { kind: 'error', testid: 'error-message' });
    }
    return done;
  } catch (error) {
    toast(errorText(`${what} failed`, error), { kind: 'error', testid: 'error-message' });
    return null;
  } finally {
    setPending(machineId, null);
  }
}

/** Run one action on a machine (asking first where it is destructive or needs a name). */
export async function runAction(machine, action, { afterDelete } = {}) {
  const spec = ACTIONS.find((a) => a.name === action);
  const what = `${spec.label} ${machine.name}`;
  const base = `/machines/${encodeURIComponent(machine.id)}`;
  try {
    if (action === 'delete') {
      const answer = await askDialog({
        title: `Delete ${machine.name}?`,
        body: 'The machine, its disks and its snapshots are removed for good.',
        confirm: 'Delete machine', danger: true, testid: 'confirm-dialog',
      });
      if (!answer) return;
      setPending(machine.id, spec.pending);
      const { operation } = await del(base);
      const done = await track(machine.id, operation, spec.pending, what);
      if (done?.status === 'succeeded') afterDelete?.();
      return;
    }
    if (action === 'clone') {
      const answer = await askDialog({
        title: `Clone ${machine.name}`,
        fields: [{ name: 'name', label: 'Name of the copy', value: `${machine.name}-copy`.slice(0, 63), hint: 'Lowercase letters, digits and hyphens.' }],
        confirm: 'Clone', testid: 'clone-dialog',
      });
      if (!answer) return;
      setPending(machine.id, spec.pending);
      const { machine: copy, operation } = await post(`${base}/clone`, { name: answer.name });
      setPending(copy.id, 'provisioning…');
      await track(machine.id, operation, spec.pending, what);
      setPending(copy.id, null);
      return;
    }
    setPending(machine.id, spec.pending);
    const { operation } = await post(`${base}/${action}`);
    await track(machine.id, operation, spec.pending, what);
  } catch (error) {
    setPending(machine.id, null);
    toast(errorText(`Could not ${action} ${machine.name}`, error), { kind: 'error', testid: 'error-message' });
  }
}

/** The row of action buttons for one machine; disabled where the state does not allow it. */
export function actionButtons(machine, { canMutate, afterDelete } = {}) {
  if (!canMutate) return null;
  const busy = pendingLabel(machine.id) !== null;
  const allowed = ALLOWED[machine.state] ?? [];
  return h('div', { class: 'btn-group', role: 'group', 'aria-label': `Actions for ${machine.name}` },
    ACTIONS.map((spec) => h('button', {
      type: 'button',
      class: `btn btn-small${spec.danger ? ' btn-danger-quiet' : ''}`,
      testid: `action-${spec.name}`,
      disabled: busy || !allowed.includes(spec.name),
      'aria-label': `${spec.label} ${machine.name}`,
      onclick: () => runAction(machine, spec.name, { afterDelete }),
    }, spec.label)));
}
