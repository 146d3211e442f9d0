import { perMinute } from '../../sync/pacer.js';

/**
 * Contact's listings: 1000/min (and 50/s) per app and tenant (limits-and-errors.md). Attendance
 * reads the directory through the same APIs, so it declares these same limits (one budget).
 */
export const CONTACT_LIMITS = {
  'contact.departments.children': perMinute(1000, 20),
  'contact.users.find_by_department': perMinute(1000, 20),
};
