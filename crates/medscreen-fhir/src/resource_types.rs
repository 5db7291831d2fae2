//! The FHIR resource type names, so that a misspelt `resourceType` is told from a resource we simply
//! do not read.
//!
//! A reader that skips types it does not use must not also skip `"MedicationReqest"`: that is a
//! medication order it failed to read, and dropping it shrinks the patient's medication list. The
//! list is every R4 (4.0.1) resource type plus the DSTU2/STU3 names that real CDS Hooks clients still
//! send (`MedicationOrder`, `ProcedureRequest`...), kept sorted for a binary search.
//!
//! The few types whose content we read are named here too, once, for every reader (Bundle, Bulk
//! export, a directory of single resources, CDS Hooks prefetch): [`READ`] and, of those, the
//! [`PATIENT_RECORD`] types that belong to a patient through their `subject`.

/// The resource types whose content we read. A Bulk export file named for one of them is read.
pub const READ: [&str; 6] = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
];

/// The types of [`READ`] that are part of one patient's record, attributed by `subject` (or
/// `patient`): a `Patient` is the record's owner and a `Medication` is shared by reference.
pub const PATIENT_RECORD: [&str; 4] = [
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
];

/// Whether `name` is one of the [`READ`] types.
pub fn is_read(name: &str) -> bool {
    READ.contains(&name)
}

/// Whether `name` is one of the [`PATIENT_RECORD`] types.
pub fn is_patient_record(name: &str) -> bool {
    PATIENT_RECORD.contains(&name)
}

/// R4 resource types and the older names still seen in CDS Hooks requests, sorted.
const TYPES: [&str; 166] = [
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodySite",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Conformance",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DataElement",
    "DetectedIssue",
    "Device",
    "DeviceComponent",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseRequest",
    "DeviceUseStatement",
    "DiagnosticOrder",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "EligibilityRequest",
    "EligibilityResponse",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExpansionProfile",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingManifest",
    "ImagingObjectSelection",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationOrder",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Order",
    "OrderResponse",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "ProcedureRequest",
    "ProcessRequest",
    "ProcessResponse",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "ReferralRequest",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "Sequence",
    "ServiceDefinition",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Whether `name` is a FHIR resource type (R4, or a DSTU2/STU3 name still in use). Exact and
/// case-sensitive, as FHIR is.
pub fn is_resource_type(name: &str) -> bool {
    TYPES.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique_so_the_search_finds_every_name() {
        assert!(TYPES.windows(2).all(|w| w[0] < w[1]));
        for t in TYPES {
            assert!(is_resource_type(t), "{t}");
        }
    }

    #[test]
    fn the_types_we_read_are_resource_types_and_records_are_read() {
        assert!(READ.iter().all(|t| is_resource_type(t)));
        assert!(PATIENT_RECORD.iter().all(|t| is_read(t)));
        assert!(!is_patient_record("Patient") && !is_patient_record("Medication"));
    }

    #[test]
    fn misspelt_and_wrong_case_names_are_not_types() {
        assert!(is_resource_type("MedicationRequest"));
        assert!(!is_resource_type("MedicationReqest"));
        assert!(!is_resource_type("medicationrequest"));
        assert!(!is_resource_type(""));
    }
}
