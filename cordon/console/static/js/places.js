// Names of places for ids the lists carry: one read per compound (its units with their
// building and unit codes, which the population by unit gives), kept for the session.
import * as api from "./api.js";

const compounds = new Map();
let compoundList = null;

export async function compoundsInScope() {
  compoundList ??= api.get("/v1/compounds");
  return compoundList;
}

export function placesOf(compoundId) {
  if (!compounds.has(compoundId)) {
    compounds.set(compoundId, api.get(`/v1/zones/population?compound_id=${compoundId}&by=unit`).then((rows) => {
      const buildings = new Map();
      const units = new Map();
      for (const row of rows) {
        if (row.building_id) buildings.set(row.building_id, row.building_code);
        if (row.unit_id) units.set(row.unit_id, `${row.building_code}-${row.unit_code}`);
      }
      return { buildings, units, rows };
    }));
  }
  return compounds.get(compoundId);
}

// Names a row's place ("3-2", or the building's code) once its compounds are read.
export async function namer(rows) {
  const ids = [...new Set(rows.map((r) => r.compound_id).filter(Boolean))].slice(0, 20);
  const known = await Promise.all(ids.map(placesOf));
  const names = (row) => {
    for (const k of known) {
      if (row.unit_id && k.units.has(row.unit_id)) return k.units.get(row.unit_id);
      if (row.building_id && k.buildings.has(row.building_id)) return k.buildings.get(row.building_id);
    }
    return row.unit || "";
  };
  return { place: names };
}
