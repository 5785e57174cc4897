// The scope picker of rounds and broadcasts: the kind, then the compounds, buildings or units
// to tick, the zone level or the tag; a level or a tag narrowed to ticked compounds where the
// API takes that (a broadcast's), across the town when none is ticked.
import { t } from "./i18n.js";
import { compoundsInScope, placesOf } from "./places.js";
import { field, fill, h, put, select } from "./ui.js";

export const LEVELS = ["sealed", "controlled", "precaution"];
export const TAGS = ["elderly", "living_alone", "elderly_only_household", "disabled", "deaf_mute", "pregnant", "infant", "newborn", "dialysis", "chronic_medication", "bedridden", "tenant"];

const byLabel = (a, b) => a[1].localeCompare(b[1], undefined, { numeric: true });

// kinds: what the API accepts; narrowed: kinds whose ids are compounds that narrow them.
export async function scopePicker({ kinds, initial = "compounds", narrowed = [], onChange = () => {} }) {
  const compounds = await compoundsInScope();
  const compoundOptions = compounds.map((c) => [c.id, `${c.code} ${c.name}`]);
  const kind = select("scope_kind", kinds.map((k) => [k, t(`scope.${k}`)]), initial, { id: "scope-kind" });
  const compound = select("scope_compound", compoundOptions, compounds[0]?.id, { id: "scope-compound" });
  const level = select("zone_level", LEVELS.map((l) => [l, t(`zone.${l}`)]), "sealed", { id: "scope-level" });
  const tag = select("scope_tag", TAGS.map((x) => [x, t(`tag.${x}`)]), TAGS[0], { id: "scope-tag" });
  const choices = h("fieldset", { id: "scope-choices" });
  const render = async () => {
    const k = kind.value;
    const narrowing = narrowed.includes(k);
    fill(choices, h("legend", {}, narrowing ? t("scope.within_compounds") : t(`scope.${k}`)));
    compound.parentElement.hidden = !["buildings", "units"].includes(k);
    level.parentElement.hidden = k !== "zone_level";
    tag.parentElement.hidden = k !== "tag";
    let options = [];
    if (k === "compounds" || narrowing) options = compoundOptions;
    if (["buildings", "units"].includes(k) && compound.value) {
      const places = await placesOf(compound.value);
      options = [...(k === "buildings" ? places.buildings : places.units).entries()].sort(byLabel);
    }
    for (const [id, label] of options) {
      put(choices, h("label", { class: "check" }, h("input", { type: "checkbox", name: "scope_id", value: id }), label));
    }
    choices.hidden = !options.length;
    onChange();
  };
  kind.addEventListener("change", render);
  compound.addEventListener("change", render);
  choices.addEventListener("change", onChange);
  level.addEventListener("change", onChange);
  tag.addEventListener("change", onChange);
  const element = h("div", { class: "inline" }, field("round.scope", kind), field("compound", compound), field("col.zone", level), field("search.tag", tag), choices);
  const ready = render();
  return {
    element,
    ready,
    value: () => {
      const k = kind.value;
      const ticked = [...choices.querySelectorAll("input:checked")].map((i) => i.value);
      return {
        kind: k,
        ids: k === "town" || (k === "zone_level" && !narrowed.includes(k)) ? [] : ticked,
        ...(k === "zone_level" ? { zone_level: level.value } : {}),
        ...(k === "tag" ? { tag: tag.value } : {}),
      };
    },
  };
}
