/** The node's client-facing errors live with the state machine that raises most of them. */
export * from '../fsm/errors.ts';
