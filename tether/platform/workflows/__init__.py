"""Durable workflows: the pure engine (history, actions, replay executor, authoring API).

No broker and no store here: the runtime (tether.platform.workflows.durable) feeds history
events in and carries the returned actions out. What the runtime uses:

- executor.OrchestrationState: `replay(registry, instance_id, history)` (cold path),
  `process(new_events, now) -> ExecutionResult` (one step per batch; keep the state in
  memory between batches for the hot path), `recovery_actions()` after a reload;
  executor.execute(...) does replay + process in one call.
- executor.ExecutionResult: appended (write in one go; replace history if history_reset),
  actions, status, name, input, output, failure, custom_status, replayed_events.
- actions: ScheduleTask, CreateTimer, CreateSubOrchestration (.start_event(now)),
  CompleteOrchestration (.parent_event(now)), TerminateOrchestration.
- history: the events (to_dict / event_from_dict / history_to_list / history_from_list),
  RuntimeStatus, ParentInstance, dt_to_str / dt_from_str.
- activity.run_activity(registry, instance_id, ScheduleTask) -> TaskCompleted | TaskFailed.
- authoring.WorkflowRegistry: what WorkflowRuntime extends (decorators, get_workflow,
  get_activity, name_of).
- view.format_history: a readable history.
"""
