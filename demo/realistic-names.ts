import type { ContactDirectory } from '../simulator/data/contact.js';
import { seededRandom } from '../simulator/data/support.js';

/**
 * The simulator names people "User 7" and teams "Department 3", which is right for tests and
 * dull for a demo. This renames a generated directory in place (ids untouched, so approval
 * initiators, Base owners and attendance punches still point at the same people).
 */
const TEAMS: Array<[string, string[]]> = [
  ['Engineering', ['Platform', 'Mobile', 'Data', 'Security']],
  ['Sales', ['EMEA', 'APAC', 'Americas', 'Partnerships']],
  ['Marketing', ['Brand', 'Growth', 'Events', 'Content']],
  ['Finance', ['Accounting', 'FP&A', 'Procurement', 'Payroll']],
  ['Operations', ['Logistics', 'Facilities', 'IT', 'Supply Chain']],
  ['People', ['Recruiting', 'Learning', 'HR Operations', 'Benefits']],
  ['Customer Success', ['Onboarding', 'Support', 'Renewals', 'Training']],
  ['Legal', ['Contracts', 'Compliance', 'Privacy', 'IP']],
];

const FIRST = [
  'Mei', 'Lars', 'Amara', 'Kenji', 'Sofia', 'Rahul', 'Chloe', 'Mateo', 'Yuki', 'Noah', 'Priya', 'Elena', 'Wei', 'Omar',
  'Hana', 'Lucas', 'Aisha', 'Jonas', 'Ines', 'Tariq', 'Lin', 'Freya', 'Diego', 'Zara', 'Hiro', 'Maya', 'Felix', 'Nia',
];
const LAST = [
  'Chen', 'Eriksen', 'Okafor', 'Tanaka', 'Rossi', 'Sharma', 'Martin', 'Garcia', 'Sato', 'Muller', 'Patel', 'Novak', 'Zhang',
  'Haddad', 'Kim', 'Silva', 'Mensah', 'Berg', 'Costa', 'Aziz', 'Wang', 'Larsen', 'Lopez', 'Ahmed', 'Ito', 'Cohen', 'Weber',
];

export function renameDirectory(tenantKey: string, dir: ContactDirectory): void {
  const rnd = seededRandom(`demo-names:${tenantKey}`);
  const pick = (list: string[]) => list[Math.floor(rnd() * list.length)] ?? list[0] ?? '';
  const names = new Map<string, string>();
  let top = 0;
  const childCount = new Map<string, number>();
  for (const dept of dir.departments.values()) {
    const parent = dept.parent_department_id;
    if (parent === '0') {
      const [name] = TEAMS[top % TEAMS.length] ?? ['Team'];
      dept.name = top < TEAMS.length ? name : `${name} ${Math.floor(top / TEAMS.length) + 1}`;
      top += 1;
    } else {
      const i = childCount.get(parent) ?? 0;
      childCount.set(parent, i + 1);
      const parentName = names.get(parent) ?? 'Team';
      const family = TEAMS.find(([name]) => parentName.startsWith(name))?.[1];
      // Two levels of named teams, then squads below them.
      dept.name = family && i < family.length ? family[i] ?? parentName : `${parentName} · Squad ${String.fromCharCode(65 + (i % 26))}`;
    }
    names.set(dept.open_department_id, dept.name);
  }
  const used = new Set<string>();
  for (const user of dir.users.values()) {
    let name = `${pick(FIRST)} ${pick(LAST)}`;
    for (let tries = 0; used.has(name) && tries < 20; tries += 1) name = `${pick(FIRST)} ${pick(LAST)}`;
    // A big directory runs out of pairs; namesakes get a middle initial, as people do.
    if (used.has(name)) name = name.replace(' ', ` ${String.fromCharCode(65 + (used.size % 26))}. `);
    used.add(name);
    user.name = name;
    user.en_name = name;
  }
}
