/** Walks a cursor-paginated listing (`?limit&cursor`, answer with `nextCursor`) page by page. */
export async function* paginate<Page extends { nextCursor?: string | null }, Item>(
  fetchPage: (cursor: string | undefined) => Promise<Page>,
  items: (page: Page) => Item[],
): AsyncGenerator<Item, void, undefined> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    yield* items(page);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
}
