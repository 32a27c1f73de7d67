import { type MigrationConfig, readMigrationFiles } from 'drizzle-orm/migrator';
import { internals, type DqliteDrizzleDatabase } from './driver.ts';

/**
 * Applies the migrations drizzle-kit generated in `migrationsFolder` (meta/_journal.json and
 * its SQL files) that the database has not seen, in one transaction, recording each in
 * `__drizzle_migrations` as Drizzle's other SQLite drivers do.
 */
export async function migrate<TSchema extends Record<string, unknown>>(db: DqliteDrizzleDatabase<TSchema>, config: MigrationConfig): Promise<void> {
  const migrations = readMigrationFiles(config);
  const { dialect, session } = internals(db);
  await dialect.migrate(migrations, session, config);
}
