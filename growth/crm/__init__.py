"""The CRM for customer-service agents: follow-up tasks, their assignment, call logs, notes and owners."""
